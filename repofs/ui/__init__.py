"""Rendering for people and for machines; core code hands values here, never prints."""
