"""Sample data for cdrbill: a deterministic generator and one committed sample month."""
