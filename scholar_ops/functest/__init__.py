"""Functionality testing of a running AI Scholar deployment (or any web application).

Suites (api, database, integration, performance, ui, pytest) are driven by a plan
(``config.TestPlan``, read from YAML or a block) and return :class:`models.TestSuite`;
``report`` turns a run into a :class:`models.ComprehensiveTestReport`. This package is
engine code: it imports neither Prefect nor the command line nor the reference
application it is usually pointed at (it tests any deployment). Great Expectations,
Schemathesis and Playwright are imported lazily, inside the suites that use them.
"""
