from transenc.cli import run

run()
