"""Pure rules from data: the corridor network, route legs and ETAs, customs duties."""
