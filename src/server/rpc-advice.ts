// Which rpc takes the step a refused transition was missing: the store says what state forbids what, this adds the call.
import type { FailedPreconditionError, MissingStep, Refusal } from "../errors.js";

/** The advice for each missing step, naming the rpc that takes it. */
const ADVICE: Record<MissingStep, (refusal: Refusal) => string> = {
  start: () => "call StartJob first",
  // It goes to a worker, which (role service) cannot call CancelJob itself, so it names who can
  // instead of telling it to.
  request_cancellation: (refusal) =>
    `no cancellation was requested: only ${refusal.status === "PENDING" ? "a RUNNING job" : "a job"} whose ` +
    "cancellation was requested (CancelJob by its owner or an admin) can be marked cancelled",
};

/** The message a caller sees for `error`: the store's own, or its refusal with the rpc that would have helped. */
export function preconditionMessage(error: FailedPreconditionError): string {
  const refusal = error.refusal;
  return refusal === undefined ? error.message : `${refusal.refused}; ${ADVICE[refusal.missing](refusal)}`;
}
