"""Console entry point: ``vigil``. The command implementations live in ``vigil.edge.cli``."""


def main(argv=None) -> int:
    from vigil.edge.cli import main as _main

    return _main(argv)
