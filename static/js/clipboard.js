// Copying text: the Clipboard API, else (plain http on a LAN address is not a secure context, and
// has none) a selected field and the copy command.

/** Copy `text`; `within` is where the stand-in field may go (inside an open modal dialog: the rest of
 * the page is inert there). Resolves with whether it worked. */
export async function copyText(text, within = document.body) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const focused = document.activeElement;
    const field = document.createElement("textarea");
    field.value = text;
    field.readOnly = true;
    field.className = "visually-hidden";
    within.append(field);
    field.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    } finally {
      field.remove();
      if (focused instanceof HTMLElement) focused.focus();
    }
  }
}
