"""The studio: a web app to see and shape templates and campaigns, behind logins with TOTP and roles."""

# Where things are, and where the next pages go:
#   app.py          create_app: the route table (login_routes, page_routes, admin_routes, /static, /healthz)
#   context.py      StudioContext (settings, users, sessions, audit, login limits, clock) and require(role):
#                   every route after login is `@require("viewer" | "editor" | "sender" | "admin")`; a POST
#                   is CSRF-checked there and its form is at request.state.form. A test fails for a route without it.
#   login.py        password -> TOTP (or recovery code) or first-login enrolment; logout
#   pages.py        home (templates, campaigns), a template's page (code editor: web/editor/ bundled to
#                   templates/studio/editor.js) and its save (editors; 409 changed on disk, 422 does not compile)
#   admin.py        the users page (admins)
#   preview.py      a template rendered for a subscriber (chunk files) and variant by the send stage's Composer;
#                   Scratch: unsaved editor text as files. preview_page.py: POST /preview, /preview/frame/KEY
#   checks.py       checks on save: compile error (refuses), variables, links with tracked form, alt, size
#   names.py        template names that cannot leave the templates folder: every path from a request goes through it
#   catalogue.py    template text read with a digest, saved only over what was loaded
#   page.py         Jinja2 pages under templates/studio/, the CSP, /static (a fixed table: editors' JS and CSS
#                   vendored there, never from a CDN), forms read with a size bound
#   users.py, credentials.py, sessions.py, limits.py, audit.py: the store and the security pieces; server.py runs it
