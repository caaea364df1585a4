"""The defaults and choices of `voxpop evaluate`'s reports, importing nothing heavy: the command
line reads them from here, and so do the report builder and writer."""

REPORT_FORMATS = ("md", "html", "json")  # report.md, report.html, report.json (PNG plots always)
HARDEST = 20  # confidently wrong examples a report lists
