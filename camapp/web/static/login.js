"use strict";
// Logs in with a JSON POST (the server refuses forms from other sites), then opens the page.
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("error");
  error.textContent = "";
  const password = document.getElementById("password").value;
  let response;
  try {
    response = await fetch("/api/login", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({password}),
      credentials: "same-origin",
    });
  } catch (e) {
    error.textContent = "camapp is not reachable";
    return;
  }
  if (response.ok) {
    location.assign("/");
    return;
  }
  const body = await response.json().catch(() => ({}));
  error.textContent = body.error || `refused (${response.status})`;
});
