"""Data QA of a coin's ML dataset: the statistics (:mod:`.stats`) and the gated report (:mod:`.report`)."""

from cryptoalgo_core.data_qa.report import qa_markdown, qa_report
from cryptoalgo_core.data_qa.stats import class_balance, drift_snapshot, ks_stat, missingness, psi

__all__ = ["class_balance", "drift_snapshot", "ks_stat", "missingness", "psi", "qa_markdown", "qa_report"]
