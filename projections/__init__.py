"""Read models: event -> MongoDB documents, with exactly-once effects under redelivery."""
