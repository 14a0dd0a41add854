"""Deterministic two-domain street scenes: the pipeline's built-in demo data.

``generate(out_dir)`` writes a *source* set in the KITTI object-detection layout, a *target*
set in the Cityscapes layout, both drawn from the same model of a street, and *perfect
translations* of the source (its scenes rendered in the target style), so that the whole
pipeline (prepare -> translate -> detect -> evaluate) can be run, tested and judged without
downloading anything. The two domains share their geometry and differ only in appearance,
which is the gap that MGUIT is meant to close. What follows describes the model like a paper's appendix.

Geometry
--------
*Camera.* A pinhole camera at height ``h_c = 1.65 m`` (KITTI's), looking horizontally, with focal
length ``f = 0.58 W`` pixels (KITTI's 721 px for 1242 px) and principal point
``(W / 2, 0.46 H)``; the horizon row jitters by +-2 % of ``H`` per image (pitch). A point
``(X, Y, Z)`` in camera coordinates (x right, y down, z forward; metres) projects to
``u = f X / Z + W / 2``, ``v = f Y / Z + c_y``. Ground points have ``Y = h_c``, so the bottom row
of an object alone fixes its depth, ``Z = f h_c / (v - c_y)``, and objects lower in the image
are nearer and larger.

*Street.* A straight street, yawed by ``theta ~ U(-0.12, 0.12)`` rad relative to the camera so
that the vanishing point moves left and right. Road coordinates ``s`` (along the street),
``t`` (across, to the right) map to the camera by a rotation about the vertical axis. The road
has one or two lanes of 3.2 m in the camera's direction (the camera drives in the rightmost
one) and one or two oncoming lanes, an optional 2.2 m parking strip on each side, a dashed
centre line, 2.5-4.5 m sidewalks, and building facades along both sidewalks: blocks 8-30 m long
and 6-22 m high, with windows on a floor grid. Trees and street lights stand at the kerbs.
Everything is a polygon in 3D, clipped against the near plane ``Z = 0.3 m`` and projected, so
perspective is exact.

*Objects.* Cars, vans, trucks, pedestrians and cyclists are 3D boxes on the ground with KITTI's
mean dimensions (+-6 %): car 1.53 x 1.63 x 3.88 m (h x w x l), van 2.21 x 1.90 x 5.08, truck
3.25 x 2.55 x 8.5, pedestrian 1.76 x 0.66 x 0.84, cyclist 1.74 x 0.60 x 1.76. Per image:
0-4 cars, 0-1 van, 0-2 trucks, 0-4 pedestrians, 0-2 cyclists and, with probability 0.3, a
group of 2-3 cars parked bumper to bumper in the distance. Depth is log-uniform between 4 m and
the depth at which the object's smaller side would shrink below 3 px (at most 70 m). Vehicles
drive in their lane or stand in a parking strip (``rotation_y`` along the street) or, one in
five, turn at a random heading;
pedestrians walk on the sidewalks or cross the road at random headings; cyclists are always
seen from the side (``|cos(alpha)| >= 0.8``). Footprints do not overlap. The 2D box of an object
is the projection of its 3D box, and the object's drawing fills that box exactly: each class is
a recognisable silhouette, chosen by the observation angle ``alpha`` -- vehicles from the side
(body, cabin or cargo box, windows, wheels, lamps at both ends) or from the front or rear
(windscreen, headlights or tail-lights, tyres, plate); pedestrians from the front (head, torso
with arms, legs with a walking stride); cyclists as a bicycle (two wheels, diamond frame,
handlebar, saddle) with a rider. Objects are painted far to near, so nearer objects occlude
farther ones, and street lights and trees take part in the same ordering.

Labels
------
*Source (KITTI).* One line per object with the 15 KITTI fields. The box is the tight box of the
drawn silhouette clipped to ``[0, W-1] x [0, H-1]``; ``truncated`` is the fraction of the
silhouette's area outside the image; ``occluded`` is 0 / 1 / 2 when less than 5 % / less than
50 % / more of the pixels the object painted inside the image are painted over by nearer
objects; dimensions, location (bottom centre of the 3D box) and ``rotation_y`` are the ones the
object was drawn from, and ``alpha = rotation_y - arctan2(x, z)``. A cyclist's box covers rider
and bicycle, as in KITTI. Objects whose box is lower than 5 % of the image height, and the
distant parked car groups, are labelled ``DontCare`` (one box per group), as KITTI's annotators
did for objects too small to label. Vans are labelled ``Van``. Objects that end up entirely
hidden are not labelled.

*Target (Cityscapes).* ``*_gtFine_polygons.json`` lists polygons in drawing order, as Cityscapes
does (later polygons occlude earlier ones): ``sky`` (everything above the horizon),
``building``, ``sidewalk``, ``road``, then ``vegetation`` and ``pole`` and the objects, far to
near. An object's polygon is the
outline of its drawn silhouette (for a rider, the convex hull of the drawn parts), clipped to
the image and rounded to integer pixels, so its tight box is the drawn object's box. Cars and
vans are ``car`` (Cityscapes has no van class); a cyclist yields a ``bicycle`` polygon (the
bicycle alone, as in Cityscapes) and a ``rider`` polygon; a distant parked group is one
``cargroup`` polygon (the convex hull of its cars). Fully hidden objects are left out.

Appearance
----------
Scenes are sampled once, with every colour expressed in the source domain; each domain then
renders the same scene in its own style. A style is a distribution: rendering draws a *look*
for the scene (:func:`~pipeline.synthetic.looks.draw_look`, from a random stream of its own)
and then paints with it. The *source* is sunny daylight (KITTI): the sampled colours as they
are (each object's own, from the source palettes: 7 car paints, 5 liveries, 7 shirts, ...),
cast shadows under objects, lamps off, sensor noise sigma = 1.5 (8-bit). The *target* is a
street at dusk (Cityscapes, re-lit), and its look is drawn per image and per object:

1. *Per-object materials.* Every object part of class c (car, truck, person -- riders too --,
   bicycle) picks one of its class's modes, then a colour for each of its material roles from
   that mode's palette, jittered by a Gaussian of 6-14 grey levels:

   ======== ================================================ =================================
   class    modes                                            roles drawn
   ======== ================================================ =================================
   car      amber fleet, teal, plum, pearl                   paint
   truck    postal, reefer, forest, rust                     livery, cab, stripe
   person   winter dark, high-vis, summer light              shirt, trousers, helmet (riders)
   bicycle  neon, chrome, matte black, signal red            frame, tyres
   ======== ================================================ =================================

   Fixed materials (glass, tyres of vehicles, skin, hair, shoes, plates, grilles) keep their
   colours. The look is drawn from its own stream, so it does not depend on the object's source
   colours at all: a red car may be teal or pearl. A vehicle's lamps are lit with probability
   0.8 (cars) or 0.9 (trucks), else unlit. The class still decides the distribution -- each
   class has modes of its own -- so a class-aware memory has modes to store and sample.
2. *Per-image light.* Every pixel passes through one affine map drawn for the image:
   exposure ``U(0.7, 1.0)``, contrast ``U(0.8, 1.0)`` about mid-grey, channel gains (colour
   cast) ``U(0.85, 1.0)``, ``U(0.92, 1.0)``, ``U(1.0, 1.15)``, and an ambient term
   ``(4, 6, 14) x U(0.5, 1.5)``. Half the images have a wet road: road and sidewalk 0.6 times
   as bright, street-light glow 1.6 times as strong (reflections).
3. *Lamps.* Light sources are on: car headlights (warm white) and tail-lights (red), truck
   marker lights (amber), 35 % of the windows (warm), street-light heads (sodium), all scaled
   by the image's lamp strength ``U(0.6, 1.3)``. Their light is added after the global light,
   together with a halo (the same light blurred by a Gaussian of ``W / 200`` px); a lamp
   smaller than a pixel lights one pixel with its light scaled by its area, and whatever is
   painted in front of a lamp hides it. Street lights add a Gaussian glow around the head and a
   pool of light on the ground, and the sky carries a band of orange light pollution along the
   horizon. No cast shadows.
4. *Sensor noise* sigma = 3 (8-bit), i.i.d. Gaussian per pixel and channel.

So the target is neither one global colour transform of the source nor one transform per
class: its objects' looks are drawn anew. ``tests/test_synthetic.py`` measures this on renders
of the same scenes in the source style and in two target draws (:func:`paired_scenes`): on 48
scenes of 128 x 64, two target draws of the same scene differ by 38 (car), 35 (truck), 66
(person) and 80 (bicycle) grey levels (mean absolute, the objects' pixels), and the best
per-class affine map from an object's source colours to its target colours, fitted on half the
objects, explains 1 % (car), none (truck, bicycle) and 5 % (person) of the target colours'
variance on the other half.

The light's ranges are calibrated on detection (the demo config, seeds 0 / 1 / 2): a
source-only detector keeps 0.35 / 0.35 / 0.41 of the oracle's mAP on the target, a detector
trained on the perfect translation (below) recovers 0.79 / 1.07 / 0.92 of the gap on person,
car and truck, and Reinhard colour transfer and FDA recover 0.00 and 0.26 of what the perfect
translation does (means). A darker light (exposure 0.5-0.85, contrast 0.65-0.9, noise 4) left
the source-only detector 16 % of the oracle's mAP.

Perfect translations
--------------------
:func:`generate` also renders every source scene in the target style, ``draws`` times (3 by
default) with independent looks: ``paired/draw_<k>/training/{image_2,label_2}`` in the KITTI
layout, with the source's file names and byte-identical label files (which pixels an object
owns does not depend on the style). Draw ``k`` of source image ``i`` has the stream
``[seed, 3, k, i]``. A detector trained on draw 0 is the ceiling of what a translation can give
(the ``perfect_translation`` training set), and two draws of one scene show how different two
correct translations may be (the diversity a sampler should reach).

Determinism and defaults
------------------------
Each image has its own generator, ``numpy.random.default_rng([seed, domain, split, index])``
(domain 0 = source, 1 = target; split 0 = train, 1 = val), split into a stream for the scene
and one for its rendering (the look and the sensor noise), so an image does not depend on the
order of generation, on ``n_jobs`` or on the size of other splits. Files are written with fixed settings (PNG without
metadata, JSON with sorted keys), so the same seed and options give byte-identical files.

The defaults -- 256 x 128 images (wide like KITTI's, though less so), 160 source images with
3 perfect translations each, and 160 + 48 target train + val images -- make a demo that trains
on two CPU cores; generating them takes about 9 s on one core and 55 MB on disk.
"""

from __future__ import annotations

from pipeline.synthetic.annotations import (cityscapes_annotation, kitti_calibration,
                                            kitti_label_lines)
from pipeline.synthetic.command import add_arguments, run_from_args
from pipeline.synthetic.layout import sample_scene
from pipeline.synthetic.looks import PARTIAL_STYLES, SOURCE_STYLE, TARGET_STYLE, draw_look
from pipeline.synthetic.render import draw_rng, paired_scenes, render_scene, scene_rng
from pipeline.synthetic.scene import (FORMAT_VERSION, METADATA_FILE, PAIRED_DIR, PAIRED_DOMAIN,
                                      SOURCE_DOMAIN, TARGET_DOMAIN, Look, Rendering, Scene, Style)
from pipeline.synthetic.writers import SyntheticDataset, generate, paired_root, partial_root

__all__ = [
    "FORMAT_VERSION",
    "Look",
    "METADATA_FILE",
    "PAIRED_DIR",
    "PAIRED_DOMAIN",
    "PARTIAL_STYLES",
    "Rendering",
    "SOURCE_DOMAIN",
    "SOURCE_STYLE",
    "Scene",
    "Style",
    "SyntheticDataset",
    "TARGET_DOMAIN",
    "TARGET_STYLE",
    "add_arguments",
    "cityscapes_annotation",
    "draw_look",
    "draw_rng",
    "generate",
    "kitti_calibration",
    "kitti_label_lines",
    "paired_root",
    "paired_scenes",
    "partial_root",
    "render_scene",
    "sample_scene",
    "scene_rng",
]
