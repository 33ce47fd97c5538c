"""The README stays true: its configuration table is the one the settings generate, and the two
commands it opens with exist."""

from dispute_platform.config_table import BEGIN, END, table
from dispute_platform.settings import REPO_ROOT


def test_readme_configuration_table_is_current():
    readme = (REPO_ROOT / "README.md").read_text()
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    assert readme[start:end] == table(), "regenerate with: python -m dispute_platform.config_table --write"


def test_readme_opens_with_the_two_make_targets():
    readme = (REPO_ROOT / "README.md").read_text()
    head = readme[: readme.index("## ")]
    assert "make run" in head and "make test" in head
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "\nrun:" in makefile and "\ntest:" in makefile
