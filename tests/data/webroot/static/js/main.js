// The tests' single-page app: routes on the client, so the server answers
// every unknown path with index.html.
document.getElementById("root").textContent = "route " + location.pathname;
