"""What commands and hook steps share: migrate, backup, restore, status, drift."""
