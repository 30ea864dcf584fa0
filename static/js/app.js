// Toasts: action endpoints answer with HX-Trigger: {"toast": {"level": ..., "message": ...}}.
document.addEventListener("toast", function (event) {
  const box = document.getElementById("toasts");
  const toast = document.createElement("div");
  toast.className = "toast toast-" + (event.detail.level || "info");
  toast.textContent = event.detail.message;
  box.appendChild(toast);
  setTimeout(function () { toast.remove(); }, 8000);
});
