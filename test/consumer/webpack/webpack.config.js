export default {
  mode: 'production',
  entry: './main.js', // bundled to dist/main.js, the worker to a chunk beside it
};
