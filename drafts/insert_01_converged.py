"""To insert into notebook 01 after the judge's cells (next session, once fmnist_alexnet15, fmnist_googlenet and
fmnist_densenet are shipped): `python -c "import sys; sys.path.insert(0, 'drafts'); import insert_01_converged as m; m.insert()"`;
then write the interpretation from the outputs, re-run 01 in cpu. (No training-time column: the manifest's seconds
are wall-clock, and these runs were paused for CI and notebook runs while they trained.)"""

MD = r"""## The four at convergence

The equal-time ranking above is after a fraction of an epoch. To rank the *architectures* rather than how fast each
starts, AlexNet, GoogLeNet and DenseNet were also trained exactly as the judge: 15 epochs on all 60,000 images, the
same optimizer, schedule, augmentation and learning rate (`python -m course_lib checkpoints fmnist_alexnet15
fmnist_googlenet fmnist_densenet`). They are loaded here and measured on all 10,000 test images, beside their
equal-time accuracy:"""

CODE = r'''converged_names = {"AlexNet": "fmnist_alexnet15", "GoogLeNet": "fmnist_googlenet", "ResNet": "fmnist_classifier",
                   "DenseNet": "fmnist_densenet"}
conv_acc, conv_rows = {}, ["| architecture | parameters | MFLOPs / image | epochs | final training loss "
                           "| test accuracy, 15 epochs | equal short time |", "|---|---:|---:|---:|---:|---:|---:|"]
for name, ckpt in converged_names.items():
    net = load_classifier(DEVICE, profile=PROFILE, name=ckpt)
    e = net.checkpoint_entry
    conv_acc[name] = record(f"{name.lower()}_15ep_test_acc", accuracy(net, test.images, test.labels))
    conv_rows.append(f"| {name} | {params[name]:,} | {mflops[name]:.1f} | {e['metrics']['epochs']} | "
                     f"{e['metrics']['final_train_loss']:.3f} | {conv_acc[name]:.2%} | "
                     f"{test_acc[name]:.2%} |")
rank = lambda acc: " > ".join(sorted(acc, key=acc.get, reverse=True))
fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
for ax, cost, label in zip(axes, ({k: v / 1e3 for k, v in params.items()}, mflops),
                           ("parameters, thousands", "MFLOPs per image")):
    for name in converged_names:
        ax.scatter(cost[name], 100 * conv_acc[name], s=40, label=name)
        ax.annotate(name, (cost[name], 100 * conv_acc[name]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set(xlabel=label, xlim=(0, 1.15 * max(cost.values())))
axes[0].set_ylabel("test accuracy, %")
fig.suptitle(f"accuracy after 15 epochs each ({len(test):,} test images) against model size and cost", fontsize=10)
plt.tight_layout(); plt.show()
print(f"ranking at equal short time: {rank(test_acc)}\nranking after 15 epochs:     {rank(conv_acc)}")
Markdown("\n".join(conv_rows))'''


def insert(path="notebooks/01_cnn_architectures.ipynb"):
    import nbformat
    nb = nbformat.read(path, as_version=4)
    assert not any("fmnist_googlenet" in c.source for c in nb.cells), "already inserted"
    judge = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and 'record("judge_test_acc"' in c.source)
    k = next(i for i in range(judge, len(nb.cells)) if nb.cells[i].cell_type == "markdown"
             and nb.cells[i].source.startswith("## "))                  # the section after the judge's
    nb.cells[k:k] = [nbformat.v4.new_markdown_cell(MD), nbformat.v4.new_code_cell(CODE)]
    nbformat.write(nb, path)
    print("inserted at", k, "before", nb.cells[k + 2].source.splitlines()[0])
