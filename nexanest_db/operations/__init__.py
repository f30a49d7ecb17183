"""What commands and hook steps share: backup sessions, restore, export (one module per operation)."""
