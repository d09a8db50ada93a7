"""The web console at ``/console/``: pages for SIMs, their data as charts, usage and bills,
the clock and faults (issue 14; docs/console.md).

The pages are static files (HTML, CSS and small vanilla JavaScript modules, our own SVG charts
among them) shipped as package data. In the browser they are a client of the emulator's public
interfaces only: ``/v1`` with a session the control plane issues for the chosen operator,
``/_emulator`` for the rest, and one stream of live updates (:mod:`harvest.console.stream`).
"""
