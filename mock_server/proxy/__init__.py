"""``bria-mock proxy``: a validating, recording proxy in front of Bria's API (or anything that speaks it).

The proxy is the fake's traffic path with a forwarding step instead of an operation: every
request that is not one of its own controls goes to the target with the caller's ``api_token``;
requests and answers are checked against ``schemas/`` as they pass (:mod:`.checks`), counted in
a bounded live tally (:mod:`.tally`, served at ``GET /bria-mock/proxy``), and written to a
recording in the contract suite's format (:mod:`.recording`). The target is checked under the
same rules as remote images (:mod:`.target`); the forwarding itself is :mod:`.forward`.
"""
