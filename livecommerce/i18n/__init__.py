"""Locales, message catalogs and money: the bottom layer, importing no domain."""
