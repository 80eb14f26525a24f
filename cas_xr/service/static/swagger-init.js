// Swagger UI for this service's OpenAPI document (assets served by the service itself).
// Signed in through the login page, "Try it out" sends the session's CSRF token.
"use strict";

window.addEventListener("load", () => {
  const element = document.getElementById("swagger-ui");
  const csrf = document.querySelector("meta[name=csrf-token]");
  window.ui = window.SwaggerUIBundle({
    url: element.dataset.openapi,
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    requestInterceptor: (request) => {
      if (csrf) request.headers["X-CSRF-Token"] = csrf.content;
      return request;
    },
  });
});
