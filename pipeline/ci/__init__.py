"""CI support: generate GitHub Actions / GitLab CI files from release.yml (`context`, `render`)
and behave as a CI step (`step`: outputs, summary, dotenv, log sections).

Importing this package imports nothing heavy; `render` imports Jinja2 only when it renders.
"""
