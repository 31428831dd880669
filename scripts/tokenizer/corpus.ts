// Training text for the fixture tokenizer's merges. Plain English about the app's own domain, so
// prompts used in tests split into a handful of multi-letter tokens rather than single letters.
export const CORPUS = `
Tabflow keeps experiments, runs, metrics and registered models in the browser.
A run has parameters, metrics and tags. Each metric is a series of values logged at a step.
You can compare two runs side by side, plot the loss and the accuracy, and export the results.
The model registry holds versions of a model. A version can have an alias such as champion.
Hello! How are you today? I am fine, thank you. What is the capital of France? It is Paris.
Tell me a short story about a cat who learns to read. The cat sat on the mat and read a book.
Write a poem about the sea, the wind and the stars. The night was quiet and the sky was clear.
Explain what a neural network is in one sentence. It is a function learned from data.
The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9 10 42 100 2024
Please answer in a friendly way and keep it short. Thanks for your help with this question.
The assistant answers the user. The system prompt says who the assistant is and what it does.
Learning rate, batch size, epochs, temperature, top p and max tokens are common settings.
`;
