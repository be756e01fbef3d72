"""The zoo's table: each file (with its overrides) beside the parameter count it must give
and what it was checked against. `tests/test_zoo_table.py` checks every row through the CLI;
`docs/gen_zoo.py` renders `docs/ZOO.md` from these rows and from the files themselves."""

from __future__ import annotations

from typing import NamedTuple


class Row(NamedTuple):
    file: str
    params: int
    checked: str
    set: dict | None = None


TV, TIMM = "outputs equal torchvision", "outputs equal timm"
ROWS = [
    Row("lenet5.cnn", 60_840, "the paper's per-layer params and connections (60,000 trainable + 840 fixed)"),
    Row("alexnet.cnn", 60_965_224, "the seeds' per-layer params"),
    Row("variants/alexnet_torchvision.cnn", 61_100_840, f"{TV} `alexnet`"),
    Row("zfnet.cnn", 62_357_608, "the paper's map sizes 110/55/26/13/6"),
    Row("vgg11.cnn", 132_863_336, f"{TV} `vgg11`"),
    Row("vgg11_lrn.cnn", 132_863_336, "count (configuration A-LRN)"),
    Row("vgg13.cnn", 133_047_848, f"{TV} `vgg13`"),
    Row("vgg16_c.cnn", 133_638_952, "count (configuration C)"),
    Row("vgg16.cnn", 138_357_544, f"{TV} `vgg16`"),
    Row("vgg19.cnn", 143_667_240, f"{TV} `vgg19`"),
    Row("nin_cifar10.cnn", 966_986, "count; one training step lowers the loss"),
    Row("nin_imagenet.cnn", 7_595_176, "count"),
    Row("googlenet.cnn", 13_378_280, "the paper's table: every module's output size and filter counts "
        "(6,998,552 on the main path)"),
    Row("variants/googlenet_torchvision.cnn", 13_004_888, f"{TV} `googlenet`, aux heads included"),
    Row("inception_v2.cnn", 25_954_248, "the paper's grid sizes 149/147/73/71/35/17/8 and channels"),
    Row("inception_v3.cnn", 27_161_264, f"{TV} `inception_v3` (23,834,568 without the aux head)"),
    Row("inception_v4.cnn", 42_679_816, f"{TIMM} `inception_v4`"),
    Row("inception_resnet_v1.cnn", 22_756_328, "count; the paper's grids"),
    Row("inception_resnet_v2.cnn", 55_843_464, f"{TIMM} `inception_resnet_v2`"),
    Row("highway_fc.cnn", 85_660, "a hand-written PyTorch highway network; one training step lowers the loss"),
    Row("highway_cifar.cnn", 869_578, "a hand-written PyTorch highway network"),
    Row("resnet18.cnn", 11_689_512, f"{TV} `resnet18`; 1.81 GMACs"),
    Row("resnet34.cnn", 21_797_672, f"{TV} `resnet34`; 3.66 GMACs"),
    Row("resnet50.cnn", 25_557_032, f"{TV} `resnet50`; 4.09 GMACs (3.86 with `v1=1`)"),
    Row("resnet101.cnn", 44_549_160, f"{TV} `resnet101`; 7.80 GMACs (7.57 with `v1=1`)"),
    Row("resnet152.cnn", 60_192_808, f"{TV} `resnet152`; 11.51 GMACs (11.28 with `v1=1`)"),
    Row("plain18.cnn", 11_515_688, "count"),
    Row("plain34.cnn", 21_623_848, "count"),
    *[Row("resnet_cifar.cnn", p, f"count (ResNet-{6 * n + 2})" + ("; one training step lowers the loss" if n == 3 else ""),
          {"n": n})
      for n, p in [(3, 269_722), (5, 464_154), (7, 658_586), (9, 853_018), (18, 1_727_962), (200, 19_421_274)]],
    *[Row("plain_cifar.cnn", p, f"count (plain-{6 * n + 2})", {"n": n}) for n, p in [(3, 269_722), (9, 853_018)]],
    Row("preact_resnet18.cnn", 11_687_720, f"{TIMM} `resnetv2_18`"),
    Row("preact_resnet34.cnn", 21_795_880, f"{TIMM} `resnetv2_34`"),
    Row("preact_resnet50.cnn", 25_549_352, f"{TIMM} `resnetv2_50`"),
    Row("preact_resnet101.cnn", 44_541_480, f"{TIMM} `resnetv2_101`"),
    Row("preact_resnet152.cnn", 60_185_128, f"{TIMM} `resnetv2_152`"),
    Row("preact_resnet_cifar.cnn", 1_703_258, "count (depth 164)"),
    Row("preact_resnet_cifar.cnn", 10_327_706, "count (depth 1001)", {"depth": 1001}),
    Row("squeezenet1_0.cnn", 1_248_424, f"{TV} `squeezenet1_0`"),
    Row("squeezenet1_1.cnn", 1_235_496, f"{TV} `squeezenet1_1`"),
    Row("mobilenet_v2.cnn", 3_504_872, f"{TV} `mobilenet_v2`"),
    *[Row("mobilenet_v2.cnn", p, f"count: torchvision `mobilenet_v2(width_mult={w})`", {"width": w})
      for w, p in [(0.35, 1_677_128), (0.5, 1_968_680), (0.75, 2_636_424), (1.4, 6_108_776)]],
    *[Row(f"densenet{n}.cnn", p, f"{TV} `densenet{n}`")
      for n, p in [(121, 7_978_856), (161, 28_681_000), (169, 14_149_480), (201, 20_013_928)]],
    *[Row(f"efficientnet_b{b}.cnn", p, f"{TV} `efficientnet_b{b}`")
      for b, p in enumerate([5_288_548, 7_794_184, 9_109_994, 12_233_232, 19_341_616, 30_389_784,
                             43_040_704, 66_347_960])],
    *[Row(f"efficientnet_v2_{v}.cnn", p, f"{TV} `efficientnet_v2_{v}`")
      for v, p in [("s", 21_458_488), ("m", 54_139_356), ("l", 118_515_272)]],
    *[Row(f"convnext_{v}.cnn", p, f"{TV} `convnext_{v}`")
      for v, p in [("tiny", 28_589_128), ("small", 50_223_688), ("base", 88_591_464), ("large", 197_767_336)]],
    Row("resnext50_32x4d.cnn", 25_028_904, f"{TV} `resnext50_32x4d`"),
    Row("resnext101_32x8d.cnn", 88_791_336, f"{TV} `resnext101_32x8d`"),
    Row("resnext101_64x4d.cnn", 83_455_272, f"{TV} `resnext101_64x4d`"),
    Row("wide_resnet50_2.cnn", 68_883_240, f"{TV} `wide_resnet50_2`"),
    Row("wide_resnet101_2.cnn", 126_886_696, f"{TV} `wide_resnet101_2`"),
    Row("mobilenet_v3_large.cnn", 5_483_032, f"{TV} `mobilenet_v3_large`"),
    Row("mobilenet_v3_small.cnn", 2_542_856, f"{TV} `mobilenet_v3_small`"),
    *[Row(f"mnasnet{a}.cnn", p, f"{TV} `mnasnet{a}`")
      for a, p in [("0_5", 2_218_512), ("0_75", 3_170_208), ("1_0", 4_383_312), ("1_3", 6_282_256)]],
    *[Row(f"shufflenet_v2_{x}.cnn", p, f"{TV} `shufflenet_v2_{x}`")
      for x, p in [("x0_5", 1_366_792), ("x1_0", 2_278_604), ("x1_5", 3_503_624), ("x2_0", 7_393_996)]],
    *[Row(f"regnet_x_{s}.cnn", p, f"{TV} `regnet_x_{s}`")
      for s, p in [("400mf", 5_495_976), ("800mf", 7_259_656), ("1_6gf", 9_190_136), ("3_2gf", 15_296_552),
                   ("8gf", 39_572_648), ("16gf", 54_278_536), ("32gf", 107_811_560)]],
    *[Row(f"regnet_y_{s}.cnn", p, f"{TV} `regnet_y_{s}`")
      for s, p in [("400mf", 4_344_144), ("800mf", 6_432_512), ("1_6gf", 11_202_430), ("3_2gf", 19_436_338),
                   ("8gf", 39_381_472), ("16gf", 83_590_140), ("32gf", 145_046_770), ("128gf", 644_812_894)]],
]
