"""Queries behind the projects and performance endpoints, kept out of the controllers so they test alone."""
