/** The basic-auth credentials the user gave (as Prefect's UI keeps them: base64 `user:password`). */
const KEY = "prefect-password";

export const credentials = {
  get: (): string | null => localStorage.getItem(KEY),
  set: (userAndPassword: string): void => localStorage.setItem(KEY, btoa(userAndPassword)),
  clear: (): void => localStorage.removeItem(KEY),
};
