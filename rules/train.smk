# Training stages of both branches: teacher -> student -> fine-tune (docs/driving.md,
# docs/endoscopy.md). The {branch} wildcard is "kitti" or "endo"; a stage's inputs are its
# branch's data and the previous stage's model. Library: workflow_scripts/training/ (assembly),
# models/training/ (loop, losses). Resources (rules/common_train.smk): one GPU per data-parallel
# process (<branch>.train.common.processes; docs/cluster.md), cores, memory and wall time.


wildcard_constraints:
    branch="kitti|endo",


rule train_teacher:
    """Teacher: stereo + depth hints (kitti); UNet on the SfM sparse-flow and
    depth-consistency losses of every sequence (endo)."""
    input:
        unpack(train_inputs("teacher")),
    output:
        model="results/{branch}/train/teacher/model.pt",
        history="results/{branch}/train/teacher/history.csv",
    log:
        "logs/train_teacher/{branch}.log",
    benchmark:
        "benchmarks/train_teacher/{branch}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    threads: train_cores
    resources:
        gpu=train_gpus,
        cpus_per_task=train_cpus,
        nodes=train_slurm_nodes,
        tasks=train_slurm_tasks,
        tasks_per_gpu=train_tasks_per_gpu,
        mpi=train_mpi,
        gres=train_gres,
        mem_mb=train_mem_mb,
        runtime=train_runtime("teacher"),
    params:
        train=train_params("teacher"),
        paths=train_paths,
        seed=TRAIN_SEED,
    script:
        "../workflow_scripts/train_teacher.py"


rule train_student:
    """Student: learns the teacher's depth (distillation) on the filtered frames (kitti) or
    on every sequence (endo: FC-DenseNet57)."""
    input:
        unpack(train_inputs("student")),
    output:
        model="results/{branch}/train/student/model.pt",
        history="results/{branch}/train/student/history.csv",
    log:
        "logs/train_student/{branch}.log",
    benchmark:
        "benchmarks/train_student/{branch}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    threads: train_cores
    resources:
        gpu=train_gpus,
        cpus_per_task=train_cpus,
        nodes=train_slurm_nodes,
        tasks=train_slurm_tasks,
        tasks_per_gpu=train_tasks_per_gpu,
        mpi=train_mpi,
        gres=train_gres,
        mem_mb=train_mem_mb,
        runtime=train_runtime("student"),
    params:
        train=train_params("student"),
        paths=train_paths,
        seed=TRAIN_SEED,
    script:
        "../workflow_scripts/train_student.py"


rule finetune:
    """Fine-tune: the student self-supervised on video with a pose network (kitti) or on the
    SfM losses again (endo)."""
    input:
        unpack(train_inputs("finetune")),
    output:
        model="results/{branch}/train/finetune/model.pt",
        history="results/{branch}/train/finetune/history.csv",
    log:
        "logs/finetune/{branch}.log",
    benchmark:
        "benchmarks/finetune/{branch}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    threads: train_cores
    resources:
        gpu=train_gpus,
        cpus_per_task=train_cpus,
        nodes=train_slurm_nodes,
        tasks=train_slurm_tasks,
        tasks_per_gpu=train_tasks_per_gpu,
        mpi=train_mpi,
        gres=train_gres,
        mem_mb=train_mem_mb,
        runtime=train_runtime("finetune"),
    params:
        train=train_params("finetune"),
        paths=train_paths,
        seed=TRAIN_SEED,
    script:
        "../workflow_scripts/finetune.py"
