// The interactive API docs, from the daemon's own OpenAPI document (no CDN).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  withCredentials: true,
});
