//! Linear classifiers for imgclass: f(x) = Wx + b trained by minibatch SGD on the SVM or softmax loss with L2/L1/elastic-net regularisation
