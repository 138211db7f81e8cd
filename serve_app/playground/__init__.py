"""The Playground's static page (index.html, playground.css, playground.js), served by
serve_app.routes.playground."""
