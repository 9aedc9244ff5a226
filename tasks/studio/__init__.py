"""The studio: a web app to see and shape templates and campaigns, behind logins with TOTP and roles."""
