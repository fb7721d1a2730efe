import Foundation

extension InferenceModel {
    /// The ONNX opset the export targets (17: Softmax and ReduceSum as opset 13 defines them, LayerNormalization
    /// unused), and the IR version that goes with it.
    public static let onnxOpset = 17
    static let onnxIRVersion = 8

    /// The whole inference graph as an ONNX model (protobuf bytes): input `input`, `[batch, features]` floats (raw
    /// values, as `mlp predict` reads them: pixels 0–255, a table's own units), the input map, every layer (`Gemm`
    /// and the hidden activation), and the outputs: a classifier's `logits` and `probabilities` (softmax; for an
    /// MSE classifier the outputs clamped at 0 and normalised, as `mlp predict` gives them), or a regression's
    /// `values` in the targets' units. The batch dimension is dynamic (`batch`); the classes, targets and features
    /// are in the model's metadata (`classes`, `targets`, `features`, JSON arrays).
    public func onnx(producerVersion: String) -> [UInt8] {
        var graph = ONNXGraph()
        let features = spec.inputSize, outputs = spec.outputSize
        var x = "input"
        switch input {
        case let .affine(scale, shift):
            graph.constant("input_scale", shape: [], floats: [scale])
            graph.constant("input_shift", shape: [], floats: [shift])
            graph.node("Mul", [x, "input_scale"], ["input_scaled"])
            graph.node("Add", ["input_scaled", "input_shift"], ["x0"])
            x = "x0"
        case let .standardize(mean, inverse):
            graph.constant("input_mean", shape: [features], floats: mean)
            graph.constant("input_inverse_std", shape: [features], floats: inverse)
            graph.node("Sub", [x, "input_mean"], ["input_centred"])
            graph.node("Mul", ["input_centred", "input_inverse_std"], ["x0"])
            x = "x0"
        case .identity:
            break
        }
        let layout = ParameterLayout(spec)
        for (l, layer) in layout.layers.enumerated() {
            // Weights as the network holds them, [in, out]: Gemm's B without a transpose.
            graph.constant("layers.\(l).weight", shape: [layer.inputs, layer.outputs],
                           floats: Array(parameters[layer.weightOffset..<layer.weightOffset + layer.weightCount]))
            graph.constant("layers.\(l).bias", shape: [layer.outputs], floats: Array(parameters[layer.biasOffset..<layer.biasOffset + layer.outputs]))
            let last = l == layout.layers.count - 1
            let z = last ? (output == nil ? "logits" : "outputs") : "z\(l + 1)"
            graph.node("Gemm", [x, "layers.\(l).weight", "layers.\(l).bias"], [z])
            if last { break }
            let op: String
            switch spec.activation {
            case .relu: op = "Relu"
            case .tanh: op = "Tanh"
            case .sigmoid: op = "Sigmoid"
            case .identity: op = "Identity"
            }
            graph.node(op, [z], ["x\(l + 1)"])
            x = "x\(l + 1)"
        }
        if let output {
            graph.constant("output_std", shape: [outputs], floats: output.standardDeviation)
            graph.constant("output_mean", shape: [outputs], floats: output.mean)
            graph.node("Mul", ["outputs", "output_std"], ["outputs_scaled"])
            graph.node("Add", ["outputs_scaled", "output_mean"], ["values"])
            graph.output("values", columns: outputs)
        } else {
            graph.output("logits", columns: outputs)
            if spec.loss == .meanSquaredError {
                // max(z, 0) / Σ max(z, 0), or uniform where that sum is 0 (Predict's `softmax(_:loss:)`).
                graph.constant("sum_axes", shape: [1], int64s: [1])
                graph.constant("zero", shape: [], floats: [0])
                graph.constant("uniform", shape: [1, outputs], floats: [Float](repeating: 1 / Float(outputs), count: outputs))
                graph.node("Relu", ["logits"], ["clamped"])
                graph.node("ReduceSum", ["clamped", "sum_axes"], ["clamped_sum"], ints: ["keepdims": 1])
                graph.node("Div", ["clamped", "clamped_sum"], ["normalised"])
                graph.node("Greater", ["clamped_sum", "zero"], ["has_mass"])
                graph.node("Where", ["has_mass", "normalised", "uniform"], ["probabilities"])
            } else {
                graph.node("Softmax", ["logits"], ["probabilities"], ints: ["axis": 1])
            }
            graph.output("probabilities", columns: outputs)
        }
        graph.input("input", columns: features)

        var metadata = [("task", output == nil ? "classification" : "regression"),
                        ("layers", spec.sizesText), ("activation", spec.activation.rawValue), ("loss", spec.loss.rawValue),
                        ("sample_shape", spec.inputSize == sampleShape.reduce(1, *) ? sampleShape.map(String.init).joined(separator: "×") : "\(features)")]
        if !classNames.isEmpty { metadata.append(("classes", jsonArray(classNames))) }
        if !targetNames.isEmpty { metadata.append(("targets", jsonArray(targetNames))) }
        if !featureNames.isEmpty { metadata.append(("features", jsonArray(featureNames))) }

        var model = ProtobufWriter()
        model.int(1, Self.onnxIRVersion)                      // ModelProto.ir_version
        model.string(2, "mlp")                                // producer_name
        model.string(3, producerVersion)                      // producer_version
        model.string(6, "A multi-layer perceptron trained by mlp: raw inputs in, \(output == nil ? "logits and class probabilities" : "values in the targets' units") out.")  // doc_string
        model.message(7) { graph.write(into: &$0, name: "mlp") }  // graph
        model.message(8) { $0.string(1, ""); $0.int(2, Self.onnxOpset) }  // opset_import: the default domain
        for (key, value) in metadata {
            model.message(14) { $0.string(1, key); $0.string(2, value) }  // metadata_props
        }
        return model.bytes
    }
}

/// An ONNX graph being built: nodes in order, initializers, and the graph's inputs and outputs (all float tensors of
/// shape `[batch, columns]`).
struct ONNXGraph {
    private var nodes: [ProtobufWriter] = []
    private var initializers: [ProtobufWriter] = []
    private var inputs: [ProtobufWriter] = []
    private var outputs: [ProtobufWriter] = []

    /// TensorProto.DataType values.
    static let float = 1, int64 = 7

    mutating func constant(_ name: String, shape: [Int], floats: [Float]) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(4 * floats.count)
        for v in floats { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        tensor(name, shape: shape, type: Self.float, raw: bytes)
    }

    mutating func constant(_ name: String, shape: [Int], int64s: [Int]) {
        var bytes = [UInt8]()
        for v in int64s { withUnsafeBytes(of: Int64(v).littleEndian) { bytes += $0 } }
        tensor(name, shape: shape, type: Self.int64, raw: bytes)
    }

    private mutating func tensor(_ name: String, shape: [Int], type: Int, raw: [UInt8]) {
        var t = ProtobufWriter()
        for d in shape { t.int(1, d) }  // TensorProto.dims
        t.int(2, type)                  // data_type
        t.string(8, name)               // name
        t.data(9, raw)                  // raw_data, little-endian
        initializers.append(t)
    }

    /// A node of the default domain, with integer attributes.
    mutating func node(_ op: String, _ inputs: [String], _ outputs: [String], ints: [String: Int] = [:]) {
        var n = ProtobufWriter()
        for i in inputs { n.string(1, i) }   // NodeProto.input
        for o in outputs { n.string(2, o) }  // output
        n.string(3, "\(op.lowercased())_\(nodes.count)")  // name
        n.string(4, op)                      // op_type
        for (name, value) in ints.sorted(by: { $0.key < $1.key }) {
            n.message(5) { a in              // attribute: AttributeProto
                a.string(1, name)            // name
                a.int(3, value)              // i
                a.int(20, 2)                 // type: INT
            }
        }
        nodes.append(n)
    }

    mutating func input(_ name: String, columns: Int) { inputs.append(Self.valueInfo(name, columns: columns)) }
    mutating func output(_ name: String, columns: Int) { outputs.append(Self.valueInfo(name, columns: columns)) }

    /// ValueInfoProto of a float tensor `[batch, columns]`, the batch dimension named, not fixed.
    private static func valueInfo(_ name: String, columns: Int) -> ProtobufWriter {
        var v = ProtobufWriter()
        v.string(1, name)                                // ValueInfoProto.name
        v.message(2) { type in                           // type: TypeProto
            type.message(1) { tensor in                  // tensor_type: TypeProto.Tensor
                tensor.int(1, float)                     // elem_type
                tensor.message(2) { shape in             // shape: TensorShapeProto
                    shape.message(1) { $0.string(2, "batch") }  // dim: dim_param
                    shape.message(1) { $0.int(1, columns) }     // dim: dim_value
                }
            }
        }
        return v
    }

    /// GraphProto's fields.
    func write(into g: inout ProtobufWriter, name: String) {
        for n in nodes { g.data(1, n.bytes) }          // node
        g.string(2, name)                              // name
        for t in initializers { g.data(5, t.bytes) }   // initializer
        for i in inputs { g.data(11, i.bytes) }        // input
        for o in outputs { g.data(12, o.bytes) }       // output
    }
}
