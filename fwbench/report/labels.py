"""The words of a report in English and Chinese: the seed document's three tables (its own Chinese row
and column labels and claims, with English translations), and the short phrases evidence is written in.

The Chinese claims are quoted from the source document (``shared/seed``) as written; the English ones
are translations. Nothing here computes anything.
"""

from __future__ import annotations

LANGS = ("en", "zh")

# table key -> (title en, title zh, [(column key, label en, label zh)])
TABLES: dict[str, tuple[str, str, list[tuple[str, str, str]]]] = {
    "pytorch_tensorflow": ("PyTorch vs TensorFlow", "PyTorch 和 TensorFlow:主要区别",
                           [("pytorch", "PyTorch", "PyTorch"), ("tensorflow", "TensorFlow", "TensorFlow")]),
    "keras_tensorflow": ("Keras vs TensorFlow", "Keras 和 TensorFlow 的区别",
                         [("keras", "Keras", "Keras"), ("tensorflow", "TensorFlow", "TensorFlow")]),
    "static_dynamic": ("Static vs dynamic graphs", "比较总结:静态图与动态图",
                       [("static", "Static graph", "静态图 (Static)"), ("dynamic", "Dynamic graph", "动态图 (Dynamic)")]),
}

FEATURE = {"en": "Feature", "zh": "特性"}

# table key -> [(row key, label en, label zh, {column: (claim en, claim zh)})], in the document's order
ROWS: dict[str, list[tuple[str, str, str, dict[str, tuple[str, str]]]]] = {
    "pytorch_tensorflow": [
        ("graph", "Computation graph", "计算图", {
            "pytorch": ("Dynamic computation graph, built at run time; flexible and easy to debug",
                        "动态计算图(Dynamic Computation Graph),运行时构建计算图,灵活且易于调试"),
            "tensorflow": ("Static computation graph; TensorFlow 2.x also supports dynamic graphs (eager execution)",
                           "静态计算图(Static Computation Graph),TensorFlow 2.x 也支持动态图(Eager Execution)")}),
        ("ease", "Ease of use", "易用性", {
            "pytorch": ("Intuitive, easy to pick up, easy to debug, Pythonic",
                        "直观,容易上手,调试方便,符合 Python 编程习惯"),
            "tensorflow": ("Not very intuitive in early versions; TensorFlow 2.x improved usability",
                           "在早期版本中不太直观,但 TensorFlow 2.x 改进了易用性")}),
        ("debugging", "Debugging and visualisation", "调试和可视化", {
            "pytorch": ("Debug-friendly: variables and outputs can be inspected at any time; works with the Python debugger",
                        "调试友好,可以随时查看变量和输出,Python 调试器兼容"),
            "tensorflow": ("Traditionally harder to debug, but TensorFlow 2.x offers better debugging support",
                           "传统上调试比较复杂,但 TensorFlow 2.x 提供了更好的调试支持")}),
        ("community", "Community and support", "社区和支持", {
            "pytorch": ("Very widely used in research and academia; active community",
                        "在研究和学术界的使用非常广泛,社区活跃"),
            "tensorflow": ("Very widely used in industry, especially large production environments",
                           "在工业界的应用非常广泛,尤其是大规模生产环境")}),
        ("hardware", "Hardware acceleration", "硬件加速", {
            "pytorch": ("GPU acceleration, NVIDIA CUDA compatible", "支持 GPU 加速,兼容 NVIDIA CUDA"),
            "tensorflow": ("Strong GPU and TPU acceleration, especially integrated with Google Cloud; also supports CUDA",
                           "强大的 GPU 和 TPU 加速支持,尤其是与 Google 云服务的集成 也支持cuda")}),
        ("api", "API style", "API 风格", {
            "pytorch": ("Pythonic, concise and easy to understand", "Pythonic 风格,简洁且易于理解"),
            "tensorflow": ("TensorFlow 1.x API is verbose; 2.x offers the simplified Keras API",
                           "TensorFlow 1.x API 比较冗长,2.x 提供了简化的 Keras API")}),
        ("deployment", "Deployment", "部署支持", {
            "pytorch": ("Mobile and embedded devices, PyTorch Mobile and a C++ back end",
                        "支持移动设备、嵌入式设备,PyTorch Mobile 和 C++ 后端"),
            "tensorflow": ("Stronger deployment support: TensorFlow Lite, TensorFlow.js and more, to many platforms",
                           "TensorFlow 提供了更强的部署支持,TensorFlow Lite、TensorFlow.js 等可部署到各种平台")}),
        ("distributed", "Distributed training", "分布式训练", {
            "pytorch": ("Distributed training (torch.distributed), but relatively new",
                        "支持分布式训练(torch.distributed),但相对较新"),
            "tensorflow": ("Mature distributed and multi-GPU training, well suited to large-scale training",
                           "具有成熟的分布式训练和多 GPU 支持,特别适合大规模训练")}),
    ],
    "keras_tensorflow": [
        ("role", "Role", "功能定位", {
            "keras": ("High-level API that simplifies building and training models", "高层次API,简化深度学习模型构建与训练"),
            "tensorflow": ("Low-level framework with comprehensive machine-learning features", "底层框架,支持全面的机器学习功能")}),
        ("ease", "Ease of use", "易用性", {
            "keras": ("Very concise and easy; suited to rapid prototyping", "非常简洁易用,适合快速原型设计"),
            "tensorflow": ("Flexible and powerful; suited to deep customisation and optimisation", "灵活且强大,适合深入定制和优化")}),
        ("api_level", "API level", "API级别", {
            "keras": ("High-level API for fast development", "高层次API,适用于快速开发"),
            "tensorflow": ("Low-level API giving more control", "低层次API,提供更多控制权")}),
        ("backends", "Back-end support", "底层框架支持", {
            "keras": ("Keras can run on several back ends (TensorFlow, Theano, CNTK)",
                      "Keras 可以运行在多个后端(TensorFlow, Theano, CNTK)"),
            "tensorflow": ("TensorFlow is its only back end", "TensorFlow 是其唯一支持的底层框架")}),
        ("distributed", "Distributed support", "分布式支持", {
            "keras": ("Distributed training through TensorFlow", "通过 TensorFlow 提供分布式训练支持"),
            "tensorflow": ("Native distributed training and multi-device computation", "原生支持分布式训练和多设备计算")}),
        ("debugging", "Debugging", "调试能力", {
            "keras": ("Easy to debug and visualise through the concise API", "通过简洁的API,易于调试和可视化"),
            "tensorflow": ("More flexible debugging tools, but more complex", "提供更多灵活的调试工具,但复杂度较高")}),
        ("hardware", "Hardware acceleration", "硬件加速", {
            "keras": ("GPU/TPU acceleration through the TensorFlow back end", "使用 TensorFlow 后端支持 GPU/TPU 加速"),
            "tensorflow": ("GPU/TPU acceleration of its own, with richer hardware optimisation",
                           "本身提供 GPU/TPU 加速,具有更丰富的硬件优化")}),
    ],
    "static_dynamic": [
        ("construction", "Graph construction", "计算图构建", {
            "static": ("The whole graph is defined before training", "训练前定义整个计算图"),
            "dynamic": ("The graph is built anew on every run", "每次运行时动态构建计算图")}),
        ("flexibility", "Flexibility", "灵活性", {
            "static": ("Inflexible: cannot be changed once built", "灵活性差,一旦构建无法修改"),
            "dynamic": ("Highly flexible: the model structure can change dynamically", "高灵活性,可以动态调整模型结构")}),
        ("optimisation", "Performance optimisation", "性能优化", {
            "static": ("Can be optimised well (node fusion, memory management)", "可以进行较好的优化(如合并节点、内存管理)"),
            "dynamic": ("Relatively slower, because the graph is rebuilt every time", "性能相对较差,因为每次都要重新构建图")}),
        ("debugging", "Debugging", "调试", {
            "static": ("Hard to debug: the whole graph must be restarted", "调试较困难,需要重新启动整个图进行调试"),
            "dynamic": ("Easy to debug: step-by-step execution, variables visible live", "调试方便,可以逐步执行,实时查看变量")}),
        ("scenarios", "Use cases", "适用场景", {
            "static": ("Production and large-scale distributed computing", "适合生产环境和大规模分布式计算"),
            "dynamic": ("Fast experiments and research that need flexibility", "适合快速实验和研究,开发过程需要灵活性")}),
    ],
}

# Short phrases evidence and page furniture are written in; ``{}`` fields are filled by str.format.
PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "title": "fwbench report",
        "environment": "Environment",
        "parity": "Parity (same math across frameworks)",
        "performance": "Performance",
        "plots": "Plots",
        "seed_tables": "The source document's comparison tables, measured",
        "seed_intro": ("Each cell gives a verdict on the source document's claim (rules: docs/report.md, "
                       "\"Verdict rules\") with why, one line per measurement, then the claim. [n] points to the "
                       "source listed under the table: results file · cell or probe id · fields."),
        "probes": "Capability probes",
        "sources": "Sources",
        "document": "Document",
        "not_measured": "not measured",
        "missing": "no evidence in these results; {hint}",
        "more": "to complete: {hint}",
        "failed": "{what} failed ({status}): {reason}",
        "skipped": "{what} skipped: {reason}",
        "quick": "quick run (--quick): few timed steps, wide confidence intervals",
        "machines": ("WARNING: these results come from {n} different machines ({machines}). Performance tables "
                     "are kept apart per machine and speedups are computed only within one machine; the source "
                     "document's tables below draw on all of them, so read cross-machine figures there with care."),
        "reference": "speedup against {ref}",
        "parity_ok": "Every runner matched the reference ({ref}): training cells on the initial and K-step losses, inference cells on their logits.",
        "parity_bad": "Parity check FAILED for {cells}: their timings are not comparable.",
        "parity_none": "No parity groups (fewer than two runners per workload and device).",
        "parity_bn": "Batch-norm moving statistics after the K steps, largest difference from the reference: {groups}.",
        "first_step": "{runner} first step {t} (steady {s})",
        "break_even": "pays back its first-step cost vs {eager} after {n} steps",
        "never_pays": "never pays back vs {eager} (not faster per step)",
        "no_steady_gain": "no break-even vs {eager}: their steady steps are the same within noise",
        "ran_on": "ran on {devices}",
        "over_cpu": "{device} {x:.2f}× CPU",
        "no_device": "{device}: not on this machine",
        "value_yes": "{runner}: intermediate value readable in the training step ({how})",
        "graph_breaks": "; {n} graph break(s)",
        "value_no": "{runner}: no concrete intermediate value in the training step ({error})",
        "shape_error": "{runner} shape error: names layer {layer}, names shapes {shapes}: “{message}”",
        "yes": "yes",
        "no": "no",
        "retraces": "{runner}: new batch size {batch} → {n} retrace(s), first call {t} (steady {s})",
        "seq_retraces": "{runner}: sequence lengths {lengths} in one session → {n} retrace(s) after the first "
                        "length; first calls {firsts} (steady {s})",
        "export_ok": "{name} ✓ {t}, {size}, max |Δ| {diff:.1e}{via}",
        "export_bad": "{name} ✗ {reason}",
        "export_diff": "{name} exported but outputs differ: max |Δ| {diff:.1e}",
        "keras_price": "{runner} step {t} = {ratio:.2f}× the hand-written tf.function step",
        "tf_step": "hand-written tf.function step (tf-graph) {t}",
        "backends_ran": "back ends that ran: {names}",
        "only_tf": "runs on TensorFlow only ({names})",
        "distributed": "{runner}: {workers} workers ({backend}), {rate} samples/s global",
        "efficiency": ", scaling efficiency {eff:.0%} of N × 1 worker",
        "steady": "{runner} {t}",
        "hint_run": "run {cmd}",
        "col_runner": "runner", "col_device": "device",
        "col_rate": "samples/s", "col_speedup": "speedup", "col_first": "first step", "col_mem": "peak mem",
        "col_parity": "parity", "col_source": "source (cell id)",
        "col_probe": "probe", "col_status": "status", "col_result": "result",
        "throughput_plot": "throughput per runner",
        "steps_plot": "step-time distribution per runner",
        "busy": "busy machine",
        "busy_note": ("{mark} busy machine: while the timed steps of {n} cell(s) ran, other processes used more than "
                      "the threshold's share of the cores each was given (interference.other_share above "
                      "interference.threshold): {cells}. Their times are not trustworthy; compare treats them "
                      "as inconclusive. Rerun them on a quiet machine."),
        "failed_short": "{what} {status}: {kind}",
        "skipped_short": "{what} skipped: {kind}",
        "vs_short": "{b} vs {a}: {ratio} — {tb} vs {ta}",
        "x_faster": "{x}× faster",
        "x_slower": "{x}× slower",
        "within_noise": "same within noise",
        "uncertain": ", uncertain",
        "over_cpu_ci": "{device} vs CPU: {ratio}",
        "verdict_supported": "supported",
        "verdict_contradicted": "contradicted",
        "verdict_mixed": "mixed",
        "verdict_not_measured": "not measured",
        "why_opinion": "no fwbench measurement can test this claim",
        "why_missing": "no measurement in these results",
        "why_failed": "the runs behind it did not succeed",
        "why_no_data": "these results lack what the rule needs ({what})",
        "why_read_yes": "{runners}: value readable inside the training step",
        "why_read_no": "{runners}: not readable",
        "why_shape_names": "its shape error names the shapes: {yn}",
        "why_speed_all": "graph mode faster beyond noise on every workload ({span})",
        "why_speed_none": "graph mode slower beyond noise on every workload",
        "why_speed_some": "graph mode faster beyond noise in {f} of {n} comparisons, slower in {s}, same within noise in {w}",
        "why_no_accel": "no GPU or TPU cell in these results",
        "why_accel_all": "{devices} faster than CPU beyond noise on every workload ({span})",
        "why_accel_none": "{devices} slower than CPU beyond noise on every workload",
        "why_accel_some": "{devices} faster than CPU beyond noise in {f} of {n} cases",
        "why_first_all": "every graph runner's first step (building the graph) took ≥ {m}× its eager counterpart's ({span})",
        "why_first_some": "a graph runner's first step took ≥ {m}× its eager counterpart's in {k} of {n} cases",
        "why_retrace_yes": "{runners} retraced (built a new graph) for a new shape",
        "why_retrace_no": "{runners} took the new shape without retracing",
        "why_export": "{k} of {n} export formats reproduce the model's outputs",
        "why_skipped": " ({m} skipped: converter not installed)",
        "why_targets": "; target platforms themselves not measured",
        "why_distributed": "{k} of {n} data-parallel runs succeeded; maturity and scale not measured",
        "why_backends": ("back ends that ran: {ran}; Theano and CNTK are not Keras 3 back ends "
                         "(Keras 3 trains on {keras3})"),
        "why_tf_only": "every TensorFlow runner that ran ({names}) executes on TensorFlow's own runtime (XLA is part of it)",
        "why_api_price": "measures the run-time price of the high-level API, not development speed",
        "why_api_control": "measures the hand-written tf.function step, not the control the API gives",
        "deploy_latency": "{runtime} p50 {t} vs {others} at batch {b}",
        "deploy_alone": "{runtime} p50 {t} at batch {b}",
        "deploy_mismatch": "; its outputs differ from the reference's (output parity mismatch)",
        "best_batch": "{runner} best batch {b}: {rate} samples/s",
        "best_near": " (within noise of batch {b})",
        "failures_title": "Failures in full",
        "failures_intro": "The full text of every failure and error message a table cell above shortens, with its source.",
        "why_sep": "; ",
    },
    "zh": {
        "title": "fwbench 报告",
        "environment": "环境",
        "parity": "一致性检查(各框架计算相同)",
        "performance": "性能",
        "plots": "图表",
        "seed_tables": "源文档的比较表格:实测",
        "seed_intro": ("每格先给出对源文档说法的判定(规则见 docs/report.md 的 \"Verdict rules\")及理由,"
                       "每项测量一行,最后是文档的说法。[n] 指向表格下方列出的来源:结果文件 · 单元或探测 id · 字段。"),
        "probes": "能力探测",
        "sources": "来源",
        "document": "文档",
        "not_measured": "未测量",
        "missing": "这些结果中没有证据;{hint}",
        "more": "补全:{hint}",
        "failed": "{what} 失败({status}):{reason}",
        "skipped": "{what} 已跳过:{reason}",
        "quick": "快速运行(--quick):计时步数少,置信区间较宽",
        "machines": ("警告:这些结果来自 {n} 台不同的机器({machines})。性能表按机器分开,加速比只在同一台机器内"
                     "计算;下面源文档的表格使用了全部结果,跨机器的数字请谨慎解读。"),
        "reference": "相对 {ref} 的加速比",
        "parity_ok": "所有运行器都与参考({ref})一致:训练单元比较初始损失和 K 步损失,推理单元比较输出 logits。",
        "parity_bad": "一致性检查失败:{cells},其计时不可比较。",
        "parity_none": "没有可比较的组(每个工作负载和设备少于两个运行器)。",
        "parity_bn": "K 步之后批归一化的滑动统计量与参考的最大差异:{groups}。",
        "first_step": "{runner} 首步 {t}(稳定 {s})",
        "break_even": "{n} 步后相对 {eager} 收回首步成本",
        "never_pays": "相对 {eager} 永不回本(每步并不更快)",
        "no_steady_gain": "相对 {eager} 无回本点:稳定步长在噪声范围内相同",
        "ran_on": "运行于 {devices}",
        "over_cpu": "{device} 为 CPU 的 {x:.2f} 倍",
        "no_device": "{device}:本机没有",
        "value_yes": "{runner}:训练步中可读取中间值({how})",
        "graph_breaks": ";图中断 {n} 次",
        "value_no": "{runner}:训练步中无法读取具体中间值({error})",
        "shape_error": "{runner} 形状错误:指出层 {layer},指出形状 {shapes}:“{message}”",
        "yes": "是",
        "no": "否",
        "retraces": "{runner}:新批大小 {batch} → 重新追踪 {n} 次,首次调用 {t}(稳定 {s})",
        "seq_retraces": "{runner}:同一会话中序列长度 {lengths} → 首个长度之后重新追踪 {n} 次;各长度首次调用 {firsts}"
                        "(稳定 {s})",
        "export_ok": "{name} ✓ {t},{size},最大 |Δ| {diff:.1e}{via}",
        "export_bad": "{name} ✗ {reason}",
        "export_diff": "{name} 已导出但输出不同:最大 |Δ| {diff:.1e}",
        "keras_price": "{runner} 每步 {t} = 手写 tf.function 步的 {ratio:.2f} 倍",
        "tf_step": "手写 tf.function 步(tf-graph){t}",
        "backends_ran": "实际运行的后端:{names}",
        "only_tf": "仅运行于 TensorFlow({names})",
        "distributed": "{runner}:{workers} 个工作进程({backend}),全局 {rate} 样本/秒",
        "efficiency": ",扩展效率为 N × 单进程的 {eff:.0%}",
        "steady": "{runner} {t}",
        "hint_run": "运行 {cmd}",
        "col_runner": "运行器", "col_device": "设备",
        "col_rate": "样本/秒", "col_speedup": "加速比", "col_first": "首步", "col_mem": "峰值内存",
        "col_parity": "一致性", "col_source": "来源(单元 id)",
        "col_probe": "探测", "col_status": "状态", "col_result": "结果",
        "throughput_plot": "各运行器吞吐量",
        "steps_plot": "各运行器每步时间分布",
        "busy": "机器繁忙",
        "busy_note": ("{mark} 机器繁忙:{n} 个单元的计时步运行期间,其他进程占用的 CPU 超过了给该单元的核心数的阈值比例"
                      "(interference.other_share 超过 interference.threshold):{cells}。其计时不可信;"
                      "compare 将其视为无法判定。请在空闲的机器上重新运行。"),
        "failed_short": "{what} 失败({status}):{kind}",
        "skipped_short": "{what} 已跳过:{kind}",
        "vs_short": "{b} 对 {a}:{ratio} — {tb} 对 {ta}",
        "x_faster": "快 {x} 倍",
        "x_slower": "慢 {x} 倍",
        "within_noise": "在噪声范围内相同",
        "uncertain": ",不确定",
        "over_cpu_ci": "{device} 对 CPU:{ratio}",
        "verdict_supported": "支持",
        "verdict_contradicted": "与测量相反",
        "verdict_mixed": "部分支持",
        "verdict_not_measured": "未测量",
        "why_opinion": "fwbench 的测量无法检验这一说法",
        "why_missing": "这些结果中没有相关测量",
        "why_failed": "相关运行未成功",
        "why_no_data": "这些结果缺少规则所需的测量({what})",
        "why_read_yes": "{runners}:训练步中可读取中间值",
        "why_read_no": "{runners}:不可读取",
        "why_shape_names": "其形状错误指出形状:{yn}",
        "why_speed_all": "图模式在每个工作负载上都快于噪声范围({span})",
        "why_speed_none": "图模式在每个工作负载上都慢于噪声范围",
        "why_speed_some": "{n} 次比较中图模式 {f} 次明显更快、{s} 次明显更慢、{w} 次在噪声范围内相同",
        "why_no_accel": "这些结果中没有 GPU 或 TPU 单元",
        "why_accel_all": "{devices} 在每个工作负载上都明显快于 CPU({span})",
        "why_accel_none": "{devices} 在每个工作负载上都明显慢于 CPU",
        "why_accel_some": "{n} 种情况中 {devices} 有 {f} 种明显快于 CPU",
        "why_first_all": "每个图模式运行器的首步(构建图)都至少是对应即时模式首步的 {m} 倍({span})",
        "why_first_some": "{n} 种情况中有 {k} 种图模式运行器的首步至少是对应即时模式首步的 {m} 倍",
        "why_retrace_yes": "{runners} 遇到新形状时重新追踪(构建新图)",
        "why_retrace_no": "{runners} 接受新形状而无需重新追踪",
        "why_export": "{n} 种导出格式中有 {k} 种能复现模型输出",
        "why_skipped": "({m} 种已跳过:未安装转换器)",
        "why_targets": ";目标平台本身未测量",
        "why_distributed": "{n} 次数据并行运行中 {k} 次成功;成熟度和规模未测量",
        "why_backends": "实际运行的后端:{ran};Theano 和 CNTK 不是 Keras 3 的后端(Keras 3 支持 {keras3})",
        "why_tf_only": "所有运行过的 TensorFlow 运行器({names})都在 TensorFlow 自身的运行时上执行(XLA 是其一部分)",
        "why_api_price": "测量的是高层 API 的运行时代价,而非开发速度",
        "why_api_control": "测量的是手写 tf.function 步,而非 API 提供的控制权",
        "deploy_latency": "{runtime} p50 {t},对比 {others}(批大小 {b})",
        "deploy_alone": "{runtime} p50 {t}(批大小 {b})",
        "deploy_mismatch": ";其输出与参照不同(输出一致性不匹配)",
        "best_batch": "{runner} 最佳批大小 {b}:{rate} 样本/秒",
        "best_near": "(与批大小 {b} 在噪声范围内)",
        "failures_title": "失败信息全文",
        "failures_intro": "上文表格中被缩短的每条失败和错误信息的全文,附其来源。",
        "why_sep": ";",
    },
}


def phrase(lang: str, key: str, **fields: object) -> str:
    """The phrase ``key`` in ``lang``, with ``fields`` filled in."""
    text = PHRASES[lang][key]
    return text.format(**fields) if fields else text
