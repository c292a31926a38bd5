"""FashionMNIST comparison of initialization schemes (placeholder).

The full comparison (seed 003's dropout-dense network trained from each
scheme, with TensorBoard logs, a results table and plots) replaces this file.
"""


def main() -> None:
    print(
        "fashion_mnist_comparison: will train Flatten -> Dense(256, relu) -> Dropout(0.2) -> "
        "Dense(128, relu) -> Dropout(0.2) -> Dense(10, softmax) on Fashion-MNIST from each "
        "scheme (zeros, ones, uniform [0, 1], uniform ±1/√fan_in, normal σ=1/√fan_in, "
        "glorot_uniform) and compare them in TensorBoard; not implemented yet."
    )


if __name__ == "__main__":
    main()
