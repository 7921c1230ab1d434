// Page functions that tests and benchmarks call through page.evaluate: an error comes back as a
// plain { error } object (Playwright would lose its name and code).
export const errorOf = (e) => ({ error: { name: e?.name, code: e?.code, message: e?.message ?? String(e) } });
export const guard = (f) => async (...args) => {
  try {
    return await f(...args);
  } catch (e) {
    return errorOf(e);
  }
};
