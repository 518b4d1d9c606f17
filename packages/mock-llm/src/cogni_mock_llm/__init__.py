"""cogni_mock_llm."""
