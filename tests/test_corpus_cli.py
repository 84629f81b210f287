"""`polytune check` on every real polyaxonfile of the shared corpus: exit 0, or exit 2 with one
`Error: …` line — never a traceback — in both the table and the `--json` form.

The corpus is read in place from ``../shared`` (never copied into the project); the test skips,
saying why, where that folder is absent.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_corpus import CORPUS, FILES, REJECTED

from polytune.cli import main


@pytest.mark.skipif(not FILES, reason=f"the shared polyaxonfile corpus is absent ({CORPUS})")
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_check_every_corpus_file(as_json: bool) -> None:
    runner = CliRunner()
    outcomes = {0: 0, 2: 0}
    for path in FILES:
        args = ["check", str(path)] + (["--json"] if as_json else [])
        result = runner.invoke(main, args, catch_exceptions=True)
        where = f"polytune {' '.join(args)}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{where} raised {result.exception!r}"
        )
        assert "Traceback" not in result.output, where
        assert result.exit_code in (0, 2), f"{where}: exit {result.exit_code}\n{result.output}"
        outcomes[result.exit_code] += 1
        if result.exit_code == 2:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), f"{where}: {result.stderr!r}"
            assert path.name in REJECTED, f"{where} was refused: {lines[0]}"
        else:
            assert path.name not in REJECTED, f"{where} should have been refused"
            if as_json:
                report = json.loads(result.stdout)
                assert isinstance(report, dict) and report
    assert outcomes[2] == len(REJECTED)
