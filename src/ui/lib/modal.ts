/**
 * `<dialog use:modal={open}>`: the native dialog is shown as a modal while `open` is true, so the
 * browser traps focus, makes the page behind it inert, fires `cancel` on Escape and gives focus
 * back to the opener when it closes.
 */
export function modal(dialog: HTMLDialogElement, open: boolean) {
  const sync = (show: boolean) => {
    if (show && !dialog.open) dialog.showModal();
    if (!show && dialog.open) dialog.close();
  };
  sync(open);
  return { update: sync };
}
