"""The live view: a page served by camapp itself (`[http]`, `--http-bind`), showing each
camera's picture with its classification, charts and controls. Needs the `web` extra
(aiohttp); camapp/web/server.py is imported only when the page is turned on."""
