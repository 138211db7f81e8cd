"""The Playground's static page (static/: index.html, playground.css, playground.js), served by
serve_app.routes.playground."""
