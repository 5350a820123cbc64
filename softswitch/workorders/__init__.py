"""The work-order loop: orders past their ``due_at`` are found (``overdue``), supervisors alerted on the
wallboard and the desk, and those overdue for long escalated to a named supervisor (``[work_orders]``,
``config``). The API runs it and serves the work-order list page (``softswitch.api.orders``)."""
