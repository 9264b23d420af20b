"""The command line: argparse, commands, report rendering and log set-up. The layer that prints."""
