"""Check as Context on any question set: loaders (GSM8K, CommonsenseQA, any JSONL), scorers
(exact, numeric, choice, regex, llm), the task study, intrinsic vs oracle-stopped comparison and
the self-consistency baseline at equal generated tokens."""
