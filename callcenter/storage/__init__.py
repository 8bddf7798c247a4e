"""The relational store: SQLAlchemy metadata shared by every capability, and its migrations."""
