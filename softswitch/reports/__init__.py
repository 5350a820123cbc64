"""Reports for supervisors: charts (``charts``, SVG drawn server-side by pygal), CSV and XLSX files
(``export``) of the store's figures (``store.reports``), the nightly export to a folder (``nightly``) and
its ``[reports]`` settings (``config``). The API serves them (``softswitch.api.reports``)."""
