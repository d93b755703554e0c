"""bria-mock's contract suite (installed as ``mock_server.contract_tests``)."""
