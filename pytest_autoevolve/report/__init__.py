"""The reports: renderers of one run summary (terminal, markdown, HTML with charts, GitHub output)."""
