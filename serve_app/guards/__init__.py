"""What stands between a request and the work: API keys, rate limits, body limits, circuit
breakers."""
