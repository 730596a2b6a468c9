// The relay's admin pages work without this script; it only adds the
// "Copy the invite" button's copying, and takes the keyboard (and a
// screen reader) to a form's mistakes when a page comes back with them.
document.getElementById("error-summary")?.focus();

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const said = document.getElementById("copied");
  try {
    await navigator.clipboard.writeText(field.value);
    said.textContent = "Copied. Paste it where the school will find it privately.";
  } catch {
    // No clipboard (a page served over plain http to another computer):
    // select the text, for Ctrl+C.
    field.focus();
    field.select();
    said.textContent = "Selected: press Ctrl+C (or Cmd+C) to copy it.";
  }
});
