// The kernel catalogue, read from the network (GET /v1/kernels: the catalogue the workers run), once per page.
import { api } from './api.js';

let catalogue = null;

/** The kernels, in the catalogue's order: [{name, description, version, inputs, params: [{name, default, ...}], outputs, shapes}]. */
export function loadKernels() {
  catalogue ??= api('/v1/kernels').catch(error => {
    catalogue = null; // asked again on the next sign-in
    throw error;
  });
  return catalogue;
}
