// The kernel catalogue (shared/Platform.Contracts/Kernels/KernelCatalog.cs), for the submit form. The API has
// no catalogue endpoint yet, so it is copied here; tests/Platform.Browser.Tests checks that the form offers
// exactly the catalogue's kernels and inputs, so the two cannot drift apart unnoticed.
export const kernels = [
  { name: 'vector-add', description: 'c = a + b', inputs: ['a', 'b'], params: [] },
  { name: 'matmul', description: 'c = a · b', inputs: ['a', 'b'], params: [] },
  {
    name: 'kmeans', description: "Lloyd's k-means from k seeded distinct points", inputs: ['points'],
    params: [['k', '8'], ['iterations', '20'], ['seed', '0']],
  },
  {
    name: 'knn', description: 'the k nearest corpus rows of each query', inputs: ['corpus', 'queries'],
    params: [['k', '10'], ['metric', 'cosine']],
  },
  {
    name: 'train-logreg', description: 'logistic regression by full-batch gradient descent', inputs: ['x', 'y'],
    params: [['epochs', '100'], ['learningRate', '0.1'], ['l2', '0']],
  },
  {
    name: 'mlp-infer', description: 'y = activation(x · w1 + b1) · w2 + b2', inputs: ['x', 'w1', 'b1', 'w2', 'b2'],
    params: [['activation', 'relu']],
  },
];
