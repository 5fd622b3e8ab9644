from cryptoalgo_assets.cli import main

main()
