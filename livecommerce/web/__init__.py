"""The browser client: static pages and ES modules served by the app itself, no build step."""
